"""The staff workspace: the queue of referrals to work."""
