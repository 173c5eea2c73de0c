"""Where referrals leak: the weekly scorecard and partner dashboards."""
