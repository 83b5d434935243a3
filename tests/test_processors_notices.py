"""A notice of a file's or dataset's condition is said once per process, not once per chunk."""

from __future__ import annotations

import logging

from cms_anomaly.processors import notices


def test_a_notice_is_said_once_per_logger_scope_and_key(caplog):
    notices._SAID.clear()
    first, second = logging.getLogger("cms_anomaly.test.first"), logging.getLogger("cms_anomaly.test.second")
    with caplog.at_level(logging.INFO, logger="cms_anomaly.test"):
        for _ in range(3):  # three chunks of one file
            notices.notice_once(first, "a.root", "%s: no PFCands", "a.root")
        notices.notice_once(first, "b.root", "%s: no PFCands", "b.root")  # another file
        notices.notice_once(second, "a.root", "%s: no PFCands", "a.root")  # another module's notice
        notices.notice_once(first, "d", "dataset %s: no era", "d", key="era", level=logging.WARNING)
        notices.notice_once(first, "d", "dataset %s: no era (%s)", "d", "run1", key="era")  # same key
    said = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        ("cms_anomaly.test.first", logging.INFO, "a.root: no PFCands"),
        ("cms_anomaly.test.first", logging.INFO, "b.root: no PFCands"),
        ("cms_anomaly.test.second", logging.INFO, "a.root: no PFCands"),
        ("cms_anomaly.test.first", logging.WARNING, "dataset d: no era"),
    ]
