"""Flex Template launcher of the batch pipeline (FLEX_TEMPLATE_PYTHON_PY_FILE of the batch template).

Thin on purpose: the template parameters arrive as ``--name=value`` flags next to Dataflow's own
(``--runner``, ``--project``, ``--template_location``, ...) and go to ``touchline batch`` unchanged.
"""

import sys

from touchline.pipelines.flex import main

if __name__ == "__main__":
    sys.exit(main("batch"))
