"""`seq2seq compare`: the encoder–decoder against its decoder-only twin on one explicit budget.

run.py trains every system with the one trainer and writes the report; flops.py counts training FLOPs;
report.py turns the runs' results.json and hypothesis files into report.md; plots.py draws its figures;
elo.py rates the systems in a pairwise tournament.
"""
