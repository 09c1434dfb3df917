"""Training stages around RL: reward-model training (``reward_model``) and pretraining / SFT (``pretrain``)."""
