"""``nn-parity fuzz``: hypothesis draws scenarios from the format's space (``space``, with named
edge-value families, ``families``), the harness's own judgement is the oracle (``oracle``), each
finding is named by its fingerprint (``fingerprint``) and shrunk to a minimal file with the same
fingerprint (``campaign``, written by ``output``). See docs/fuzz.md."""
