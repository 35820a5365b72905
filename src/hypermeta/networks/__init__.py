"""Networks: trajectory encoder, policy bases and the hypernetwork layer."""
