"""The scenario data contract: vocabulary, one schema per table, and the problem report.

Everything else in wulian (demand, resources, planning, optimizer, ui, api) reads its column
names, allowed codes and display names from here, so the contract is declared exactly once.
"""
