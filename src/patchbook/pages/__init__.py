"""The page layer, used only by the notebooks and the command line: profiles
(:mod:`.profiles`), what a page does first (:mod:`.session`), measured
results (:mod:`.results`), tables (:mod:`.tables`), figures
(:mod:`.plotting`), the results overview (:mod:`.overview`), notebook
execution (:mod:`.execute`) and the book build (:mod:`.build`). The parts of
the talk (:mod:`patchbook.invariance`, :mod:`patchbook.patchknn`,
:mod:`patchbook.style`) never import it."""
