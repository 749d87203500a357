"""segrade: grades deep-learning segmentation assignments and writes the results up.

The grade of one submission flows through one function per step, in this order
(see ``grader.grading.pipeline``):

    load  ->  check  ->  evaluate  ->  score  ->  report
"""

__version__ = "0.1.0"
