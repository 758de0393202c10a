"""redmica-ops: the operations CLI for multi-tenant Redmine/RedMica on AWS."""

__version__ = "0.1.0"
