"""Campaigns (活动): time-boxed challenges with a bonus in points within a budget."""
