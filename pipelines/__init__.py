"""User-level jobs and the ``lotto-media`` command line, installed as ``lotto_media.pipelines``."""
