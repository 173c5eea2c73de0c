"""Submitting, following and working referrals."""
