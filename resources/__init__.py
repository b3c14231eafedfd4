"""Supply side: the five linkages' providers, offers, funds and volunteers, with the synthetic
generator of Chengdu-shaped supply (the centre hierarchy is in ``contract.hierarchy``)."""
