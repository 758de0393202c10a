"""Tenants: the document, its strict YAML, the S3 store, the rules across tenants."""
