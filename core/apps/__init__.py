"""Apps: what a developer integrates as. An app belongs to one business, uses one of its M-Pesa
channels (and so one mode: a simulator or sandbox channel makes a test app, a production channel a live
one), and owns its API keys and webhook endpoints."""
