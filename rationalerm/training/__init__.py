"""Stage 9: fit a cross-encoder matcher on human labels or on a judge's run.

``labels``: the label sources (label files, run directories) and the validation split; ``recipe``: the
training recipe (a config section); ``trainer``: the training run, device detection and the model card
(``training.json``); ``parts``: what sentence-transformers' trainer is given (dataset, arguments, the
length-grouped batch sampler, the step watcher); ``validation``: the held-out figures of the card.
"""
