"""Daraja's asynchronous answers other than STK callbacks (core.payments.callbacks): the Result and
QueueTimeOut of a payout, a balance or status lookup and a reversal, and C2B confirmations. Stored raw
before we answer, applied once by the domain that asked (a handler per kind), in a job."""
