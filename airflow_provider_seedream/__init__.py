"""Apache Airflow provider for ByteDance Seedream image generation through Novita AI."""

__version__ = "0.1.0"
