"""A faithful local simulator of the WhatsApp Cloud API, for the demo, tests and benchmarks."""
