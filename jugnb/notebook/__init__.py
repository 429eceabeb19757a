"""A notebook as a jugfile: ``%%jugfile`` cells to one module, export, paths beside the notebook, lint.

Pure file and text work: nothing here imports jug's task machinery, a store, IPython or ipywidgets.
"""
