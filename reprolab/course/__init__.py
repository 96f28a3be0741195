"""The course's figures and widgets: what the notebooks show, so that no notebook holds logic a second one needs.

``plots`` (plotly figures), ``widgets`` (the α slider), ``alpha_explorer``, ``threshold_explorer``,
``perturbation_explorer``, ``embedding_map`` (the shared UMAP), ``label_mapping_plots`` (notebook 08's label maps) and ``student`` (student copies of the notebooks).
May import experiment, evaluation and everything below them; never bench or the command line.
"""
