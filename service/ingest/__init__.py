"""The ingest wing: events in, documents stored, each outcome reported.

`body` reads request bodies, `validation` checks events against their dataset's declaration,
`clock` corrects client clocks, `pipeline` runs validate → prepare → claim → bulk, with
`group_commit` sharing a worker's `_bulk` among concurrent small requests, and `report` says
what became of each event. The HTTP views and `flask import` both go through `pipeline.run`.
"""
