"""``python -m lotto_media.pipelines`` runs the ``lotto-media`` command line."""

from .cli import main

raise SystemExit(main())
