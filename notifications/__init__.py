"""Transports that send the outbox (SMTP, GOV.UK Notify, a folder of .eml files): the scheduler issue."""
