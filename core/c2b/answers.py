"""Handlers of Daraja answers for this domain (core.mpesa_inbox.registry); none yet."""
