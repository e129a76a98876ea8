"""The papers' CIFAR experiments: ``papers`` (the experiments as data, with the papers' numbers),
``runs`` (plan and train an experiment's runs) and ``tables`` (its table and figure beside the paper's)."""
