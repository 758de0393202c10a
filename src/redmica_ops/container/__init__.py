"""The container side: which tenants it serves, their Apache vhosts, escaping, Apache itself."""
