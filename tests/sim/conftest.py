"""The simulator's tests import their helpers from sim_support.py next to this file."""
