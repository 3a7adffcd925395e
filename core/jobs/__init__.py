"""Scheduled work of the scheduler role."""
