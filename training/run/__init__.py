"""One training run: ``pipeline`` (config -> strategy -> data -> model -> recipe -> fit -> report) and
the pieces it is made of: ``strategy`` (devices and replicas), ``network`` (the model a run trains),
``finetune`` (a trained network with a new classifier), ``callbacks``, ``multi_worker_fit`` (the
training loop Keras lacks for ``MultiWorkerMirroredStrategy``), ``run_folder`` (new, resumed or
finished runs) and ``report`` (the error curves and ``metrics.json``)."""
