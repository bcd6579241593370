"""``loadbench eval``: output quality, cost per acceptable outcome and consistency, next to latency.

Pure core (layer 3, no I/O beyond reading the files it is given):
    dataset      JSONL cases with ground truth, their hash, and case selection
    suite        the suite YAML (pydantic at the edge; errors name file, line, field, fix)
    criteria     one scorer per criterion type: (output, case) -> Score
    classify     per-class and macro precision / recall / F1 and the confusion matrix
    stats        Wilson and bootstrap intervals, pass@k and pass^k estimators
    pricing      pricing.yaml and the cost of one call's token buckets
    consistency  agreement across repeats of one case
    decision     the non-inferiority rule: ACCEPT / REJECT (naming the criterion) / INCONCLUSIVE
    aggregate    records of scored calls -> the Scorecard
    scorecard    the versioned Scorecard record (``loadbench.scorecard/1``)
    expand       deterministic synthetic variations of a seed dataset
    probes       the built-in failure-mode probe cases and how each outcome is classified
Layer 4 (I/O): ``runner`` (asyncio client, one fresh session per repeat), ``judge`` (blind judge
client), ``codeexec`` (code_tests in a limited subprocess), ``render`` (scorecard.md / .html).
"""
