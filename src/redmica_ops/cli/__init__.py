"""Thin click commands: parse, call the library, render. One module per command group."""
