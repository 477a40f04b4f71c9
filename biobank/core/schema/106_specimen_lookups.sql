-- Look-ups the web pages make on every request (docs/service.md, benchmarks/bench_service.py):
-- a participant's specimens (participant page, specimen count) and a specimen's aliquots
-- (specimen page: remaining quantity, children). Without them each is a scan of the
-- whole specimen table (5 ms at 500,000 specimens, several per page).
CREATE INDEX specimen_participant ON specimen (participant_id);
CREATE INDEX specimen_parent ON specimen (parent_label);
