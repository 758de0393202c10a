"""Cells: the fleet spread over several ECS services, routed by hostname, released in waves."""
