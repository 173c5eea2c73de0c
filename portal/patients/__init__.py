"""Patients confirm their next step through signed links, without an account."""
