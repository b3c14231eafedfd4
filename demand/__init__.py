"""Needs side: households' multidimensional assessment, Alkire–Foster scoring, the four-colour
code from a policy file, and the synthetic generator of households and needs."""
