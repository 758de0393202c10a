"""Scripts run by make (end-to-end runs, bootstrap); a package so they can share helpers."""
