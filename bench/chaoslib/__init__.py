"""The chaos campaign (``bench/chaos.py``) as a package, one module per job:

* :mod:`.config` — :class:`~.config.CampaignConfig` and the campaign's constants;
* :mod:`.recorder` — what the consumer and each feed's book received, and samples;
* :mod:`.trader` — seeded position churn through the simulator's control API;
* :mod:`.injector` — seeded, bounded faults through the control API;
* :mod:`.runner` — one mode of the campaign (simulator + session), and the campaign;
* :mod:`.lifecycles` and :mod:`.analysis` — matching the exchange's transition log with
  the consumer's events, attributing failures to known findings, the verdict (plain
  dicts and JSON records only: no feedctl runtime, no simulator, cheap to import);
* :mod:`.report` — the results table.

Run it with ``python bench/chaos.py`` (which puts ``bench/`` on ``sys.path``).
"""
