"""The demo recipe: the whole loop on one suite, planned as data and run step by step."""
