"""`redmica probe`: request every selected tenant's site and judge whether it is that tenant's,
working site (docs/probe.md). A library like the others: a typed request in, a typed outcome
out, time from an injected clock, HTTP through an injected transport."""
