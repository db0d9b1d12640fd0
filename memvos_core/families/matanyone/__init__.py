"""MatAnyone and MatAnyone 2 (learned alpha mattes, S-Lab License 1.0, non-commercial): the
network (:mod:`.network`), loading and recognising its checkpoints (:mod:`.checkpoint`), and
its inference behind the family interface (:mod:`.model`)."""
