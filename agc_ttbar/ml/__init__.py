"""Jet-parton assignment (spec §6): permutations, features, truth labels, training, inference."""
