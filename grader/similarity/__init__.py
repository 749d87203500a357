"""Code similarity across a batch of submissions (`segrade similarity DIR`, and by default at
the end of `segrade grade`).

Two views, each a number in [0, 1] per pair of submissions:

- textual (`grader.similarity.textual`): winnowing over normalised tokens with copydetect, on
  the code segrade really extracted from each submission (`OUT/<id>/code/`: notebooks after
  conversion and the top-level filter, the submission's .py files); the reference solution and
  the instructor's starter code are boilerplate, whose fingerprints never count;
- structural (`grader.similarity.structural`): per variant, the layers the built model holds
  (type, hyper-parameters, parameter shapes, in order) and its dataflow-graph fingerprint, as
  the worker recorded them in results.json; it is blind to names, comments and layout.

`grader.report.similarity` ranks the pairs, groups students similar across several variants and
writes `similarity.html` and `similarity.csv`. Nothing leaves the machine. Similarity is
evidence for a person to weigh, never a verdict.
"""

from grader.similarity.run import SimilarityOptions, SimilarityResult, run_similarity

__all__ = ["SimilarityOptions", "SimilarityResult", "run_similarity"]
