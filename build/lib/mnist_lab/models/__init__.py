"""The networks and the LightningModule that trains them; a checkpoint rebuilds both."""
