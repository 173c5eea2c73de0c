"""SLA clocks in business time: targets, pauses, at-risk and breach tagging."""
