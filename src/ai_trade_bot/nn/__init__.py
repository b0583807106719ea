"""Network modules and the one shared LightningModule / DataModule for every torch agent."""
