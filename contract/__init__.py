"""The scenario data contract: vocabulary, one schema per table, the problem report and the
centre hierarchy.

Everything else in wulian (demand, resources, planning, optimizer, ui, api) reads its column
names, allowed codes and display names from here, so the contract is declared exactly once.
"""
