"""A tenant's life beyond its document: provision, suspend, back up, rotate, deprovision."""
