"""Servers and frameworks: where we run, PasteDeploy, framework templates and caches."""
