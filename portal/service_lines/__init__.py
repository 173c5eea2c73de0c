"""Service lines as partners read them: the referral packet, on screen and on paper."""
