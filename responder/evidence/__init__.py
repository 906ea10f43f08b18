"""Evidence: write-once bundles of what an incident was before responder acted on it.

Pure (plain values in and out):

* `bundle`: the bundle format, canonical JSON, the manifest and its hash, `check`
* `settings_view`: the settings as evidence records them, secrets left out
* `assets` (`EventAssets`): which models an incident affects; `describe_models` asks the model
  registry port about them (the seam where the AI asset graph will plug in)

I/O:

* `store`: `EvidenceStore` and its local-directory and S3 implementations (write-once)
* `collect`: the incident, its events and runs, its snapshot records, from SQL
* `snapshot`: `Snapshotter`, the `EvidencePort` behind the `evidence.snapshot` action
* `verify`: each recorded bundle against its manifest hash in the audit chain
"""
