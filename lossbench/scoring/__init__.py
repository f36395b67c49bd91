"""Scoring samples: feature spaces, Frechet distances and the evaluation context metrics read."""
