"""Gateways: one module per PG, each a subclass of :class:`~django_pgpay.gateways.base.BaseGateway`.

A gateway turns an order snapshot and parameters into HTTP calls and returns
frozen dataclasses from :mod:`django_pgpay.gateways.results`. It never saves a
model, never reads a request and never returns an HTTP response.
"""
