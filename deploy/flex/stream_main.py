"""Flex Template launcher of the streaming pipeline (FLEX_TEMPLATE_PYTHON_PY_FILE of the streaming template).

Thin on purpose: the template parameters arrive as ``--name=value`` flags next to Dataflow's own
and go to ``touchline stream`` unchanged.
"""

import sys

from touchline.pipelines.flex import main

if __name__ == "__main__":
    sys.exit(main("stream"))
