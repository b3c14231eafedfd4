"""Supply side: the centre hierarchy and the five linkages' providers, offers, funds and
volunteers, with the synthetic generator of Chengdu-shaped supply."""
